#!/usr/bin/perl
# test/layers.pl SRC_DIR: checks that the #include lines of bmfredis'
# sources follow its layers (docs/design.md), and prints one line per
# broken rule ("file:line: what"); exits 1 if there is any.
#
# The layers, bottom up, are the folders of src/: base, wire, pool,
# client, xact, feature, worker; src/bmfredis.c (_PG_init) is above them
# all.  The rules:
#   1. a file includes project headers of its own folder or of folders
#      below it only (so no two folders can include each other);
#   2. features talk to Redis through client/ and xact/: no file in
#      feature/ includes pool/ headers or wire/transport.h;
#   3. only wire/resp.c includes hiredis, only wire/transport.c includes
#      OpenSSL's TLS or the socket headers (client/args.c uses OpenSSL's
#      SHA1 for script hashes: not TLS);
#   4. every project include names its folder ("pool/pool.h"), so the
#      layer of a header is plain where it is included;
#   5. no function is longer than 110 lines (about a screen and a half):
#      a longer one is split into steps that have names.
use strict;
use warnings;

my $src = shift // 'src';
my @layers = qw(base wire pool client xact feature worker);
my %rank = map { $layers[$_] => $_ } 0 .. $#layers;
my %known;    # header path under src/ => 1
my @files;

opendir(my $d, $src) or die "$src: $!";
for my $e (sort readdir $d) {
	next if $e =~ /^\./;
	if (-d "$src/$e") {
		die "src/$e: a folder that is not a layer (add it to test/layers.pl and docs/design.md)\n"
			unless exists $rank{$e};
		opendir(my $l, "$src/$e") or die;
		for my $f (sort readdir $l) {
			next unless $f =~ /\.[ch]$/;
			push @files, "$e/$f";
			$known{"$e/$f"} = 1 if $f =~ /\.h$/;
		}
		closedir $l;
	}
	elsif ($e =~ /\.[ch]$/) {
		push @files, $e;
	}
}
closedir $d;

my @bad;
for my $f (@files) {
	my ($layer) = $f =~ m{^([a-z]+)/};
	my $r = defined $layer ? $rank{$layer} : scalar(@layers);    # bmfredis.c: the top
	open(my $fh, '<', "$src/$f") or die "$src/$f: $!";
	while (my $line = <$fh>) {
		if ($line =~ /^\s*#\s*include\s*"([^"]+)"/) {
			my $h = $1;
			if ($h =~ m{^([a-z]+)/[^/]+\.h$} && $known{$h}) {
				my $hl = $1;
				push @bad, "src/$f:$.: includes $h, of the layer $hl above its own ($layer)"
					if $rank{$hl} > $r;
				push @bad, "src/$f:$.: a feature includes $h (features talk through client/ and xact/)"
					if defined $layer && $layer eq 'feature' && ($hl eq 'pool' || $h eq 'wire/transport.h');
			}
			elsif ($h =~ /^[a-z_]+\.h$/ && grep { -f "$src/$_/$h" } @layers) {
				push @bad, "src/$f:$.: includes \"$h\" without its folder";
			}
		}
		elsif ($line =~ /^\s*#\s*include\s*<([^>]+)>/) {
			my $h = $1;
			push @bad, "src/$f:$.: includes <$h> (only wire/resp.c includes hiredis)"
				if $h =~ m{^hiredis/} && $f ne 'wire/resp.c';
			push @bad, "src/$f:$.: includes <$h> (only wire/transport.c touches sockets and TLS)"
				if $h =~ m{^(openssl/(ssl|err|x509)|sys/socket\.h|netdb\.h|netinet/|arpa/inet\.h|sys/un\.h)}
				&& $f ne 'wire/transport.c';
		}
	}
	close $fh;

	# rule 5: a definition starts at "name(" in column 0 after its type
	# line and ends at the first "}" in column 0
	open($fh, '<', "$src/$f") or die;
	my ($fn, $start);
	while (my $line = <$fh>) {
		if (!defined $fn && $line =~ /^([A-Za-z_][A-Za-z0-9_]*)\(/) {
			($fn, $start) = ($1, $.);
		}
		elsif (defined $fn && $line =~ /^\}/) {
			push @bad, "src/$f:$start: $fn is " . ($. - $start + 1) . " lines long (at most 110)"
				if $. - $start + 1 > 110;
			undef $fn;
		}
		elsif (defined $fn && $line =~ /;\s*$/ && $. == $start) {
			undef $fn;		# a prototype
		}
	}
	close $fh;
}
print "$_\n" for @bad;
exit(@bad ? 1 : 0);
