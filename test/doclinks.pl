#!/usr/bin/perl
# test/doclinks.pl FILE.md...: every relative link of the Markdown files
# (outside code blocks) names a file that exists and, with #anchor, a
# heading of that file (GitHub's anchors: lower case, punctuation dropped,
# spaces as hyphens).  Prints one line per broken link ("file:line: link");
# exits 1 if there is any.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;

my %anchors;    # path => { anchor => 1 }
sub anchors_of {
	my ($path) = @_;
	return $anchors{$path} if $anchors{$path};
	my %a;
	open(my $fh, '<', $path) or return $anchors{$path} = {};
	my $code = 0;
	while (<$fh>) {
		$code = !$code if /^```/;
		next if $code;
		if (/^#{1,6} (.*?)\s*$/) {
			my $s = lc $1;
			$s =~ s/[`*]//g;
			$s =~ s/[^\w\- ]//g;
			$s =~ s/ /-/g;
			$a{$s} = 1;
		}
	}
	return $anchors{$path} = \%a;
}

my $bad = 0;
for my $file (@ARGV) {
	open(my $fh, '<', $file) or die "$file: $!";
	my $code = 0;
	while (my $line = <$fh>) {
		$code = !$code if $line =~ /^```/;
		next if $code;
		while ($line =~ /\[[^\]]*\]\(([^)\s]+)\)/g) {
			my $link = $1;
			next if $link =~ /^[a-z]+:/;
			my ($path, $anchor) = split /#/, $link, 2;
			my $target = $path eq '' ? $file : File::Spec->catfile(dirname($file), $path);
			if (!-e $target) {
				print "$file:$.: $link (no such file)\n";
				$bad = 1;
			} elsif (defined $anchor && $anchor ne '' && $target =~ /\.md$/ && !anchors_of($target)->{$anchor}) {
				print "$file:$.: $link (no such heading)\n";
				$bad = 1;
			}
		}
	}
}
exit $bad;
