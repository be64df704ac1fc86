#!/usr/bin/perl
# test/doclinks.pl FILE.md...: every relative link of the Markdown files
# (outside fenced code blocks; its text may wrap across lines) names a file
# that exists and, with #anchor, a heading of that file (GitHub's anchors:
# lower case, punctuation dropped, spaces as hyphens, -1, -2 for repeats).  Prints one line per broken link ("file:line: link");
# exits 1 if there is any.
use strict;
use warnings;
use utf8;
binmode STDOUT, ':encoding(UTF-8)';
use File::Basename qw(dirname);
use File::Spec;

my %anchors;    # path => { anchor => 1 }

# the file's text with its fenced code blocks blanked (lines kept, so that
# line numbers stay true)
sub text_of {
	my ($path) = @_;
	open(my $fh, '<:encoding(UTF-8)', $path) or return undef;
	local $/;
	my $t = <$fh>;
	$t =~ s/^(```|~~~).*?^\1[^\n]*$/my $b = $&; $b =~ s|[^\n]||g; $b/gmse;
	return $t;
}

sub anchors_of {
	my ($path) = @_;
	return $anchors{$path} if $anchors{$path};
	my (%a, %seen);
	my $t = text_of($path) // '';
	for my $h ($t =~ /^#{1,6} +(.*?)\s*$/mg) {
		my $s = lc $h;
		$s =~ s/[`*]//g;
		$s =~ s/[^\w\- ]//g;
		$s =~ s/ /-/g;
		# GitHub numbers a repeated heading's anchor: x, x-1, x-2
		my $n = $seen{$s}++;
		$a{$n ? "$s-$n" : $s} = 1;
	}
	return $anchors{$path} = \%a;
}

my $bad = 0;
for my $file (@ARGV) {
	my $t = text_of($file) // die "$file: $!";
	# a link's text may wrap across lines
	while ($t =~ /\[([^\]]*)\]\(([^)\s]+)\)/g) {
		my $link = $2;
		my $line = 1 + (() = substr($t, 0, $-[0]) =~ /\n/g);
		next if $link =~ /^[a-z]+:/;
		my ($path, $anchor) = split /#/, $link, 2;
		my $target = $path eq '' ? $file : File::Spec->catfile(dirname($file), $path);
		if (!-e $target) {
			print "$file:$line: $link (no such file)\n";
			$bad = 1;
		} elsif (defined $anchor && $anchor ne '' && $target =~ /\.md$/ && !anchors_of($target)->{$anchor}) {
			print "$file:$line: $link (no such heading)\n";
			$bad = 1;
		}
	}
}
exit $bad;
