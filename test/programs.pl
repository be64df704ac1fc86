#!/usr/bin/perl
# test/programs.pl FILE...: the programs that shell scripts (and the \!
# lines of psql scripts) call, one "program<TAB>file:line" a line.
#
# A small tokenizer for the shell these scripts are written in.  It
# follows quotes, $( ), backticks and ( ) subshells (whose insides are
# commands again), skips here documents, comments, arithmetic, [[ ]],
# array literals, case patterns and for lists, and reports the first word
# of every simple command, after assignments and after words that run
# another command (exec, timeout 5, env, setpriv ... --, taskset -c 1,
# xargs, bmf_as_user, ...).  A path under a variable ("$pgbin/initdb",
# "$(pg_config --bindir)/pgbench") counts by its last component, in an
# assignment too.  Builtins, keywords and functions are reported as well:
# test/t/programs.sh tells them apart.  Only perl-base is used, which
# every Debian system has.
use strict;
use warnings;

my %runs_next = map { $_ => 1 } qw(exec command nohup env sudo xargs time
	bmf_as_user bmf_spawn_as_user setpriv taskset timeout nice);
my %keyword = map { $_ => 1 } qw(then do else elif if while until ! { }
	done fi esac in time);

my ($file, $text, @c, $n, $i, $line);
my @out;

sub report {
	my ($w, $ln) = @_;
	if ($w =~ m{^["']?\$.*/([A-Za-z0-9_.+-]+)["']?$}) {
		$w = $1;
	}
	return unless $w =~ m{^[A-Za-z_./][A-Za-z0-9_.+/-]*$};
	$w =~ s{.*/}{};
	return if $w eq '';
	push @out, "$w\t$file:$ln\n";
}

sub skip_to {
	my ($close) = @_;
	my $e = index($text, $close, $i);
	$e = $n - length($close) if $e < 0;
	$line += (substr($text, $i, $e - $i) =~ tr/\n//);
	$i = $e + length($close);
}

# skip a balanced ( ... ) group whose "(" was just consumed
sub skip_parens {
	my $depth = 1;
	while ($i < $n && $depth > 0) {
		my $ch = $c[$i++];
		if ($ch eq "\n") { $line++; }
		elsif ($ch eq '\\') { $i++; }
		elsif ($ch eq "'") { skip_to("'"); }
		elsif ($ch eq '"') { skip_dq(); }
		elsif ($ch eq '(') { $depth++; }
		elsif ($ch eq ')') { $depth--; }
	}
}

# inside "...", after the opening quote: commands in $( ) and ` ` count
sub skip_dq {
	while ($i < $n) {
		my $ch = $c[$i];
		if ($ch eq '\\') { $i += 2; next; }
		if ($ch eq '"') { $i++; return; }
		if ($ch eq "\n") { $line++; $i++; next; }
		if ($ch eq '$' && $i + 2 < $n && $c[$i + 1] eq '(' && $c[$i + 2] eq '(') {
			$i += 3; skip_to('))'); next;
		}
		if ($ch eq '$' && $i + 1 < $n && $c[$i + 1] eq '(') {
			$i += 2; commands(')'); next;
		}
		if ($ch eq '`') { $i++; commands('`'); next; }
		$i++;
	}
}

# A list of commands, until the closer (')', '`' or end of text).  Returns
# with the closer consumed.
sub commands {
	my ($closer) = @_;
	my $start = 1;			# the next word starts a command
	my $skip = 0;			# words to pass over (timeout's duration, ...)
	my $dashdash = 0;		# setpriv: up to "--"
	my $mode = '';			# for, casein, case (patterns), casebody
	my @heredocs;
	my $word = '';
	my $started = 0;
	my $wline = $line;
	my $plain = 1;			# the word has no expansion in it

	my $end_word = sub {
		return unless $started;
		my ($w, $wasplain) = ($word, $plain);
		($word, $started, $plain) = ('', 0, 1);
		if ($mode eq 'for') {
			if ($w eq 'do') { $mode = ''; $start = 1; }
			return;
		}
		if ($mode eq 'casein') { $mode = 'case' if $w eq 'in'; return; }
		if ($mode eq 'case' || ($mode eq 'casebody' && $start && $w eq 'esac')) {
			if ($w eq 'esac') { $mode = ''; $start = 0; }
			return;
		}
		if ($w =~ /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=(.*)$/s) {
			my $v = $2;
			report($1, $wline) if $v =~ m{\)/([A-Za-z0-9_.+-]+)["']?$};
			return;			# an assignment: the command comes after it
		}
		return unless $start;
		if ($dashdash) { $dashdash = 0 if $w eq '--'; return; }
		if ($skip > 0) {
			$skip++ if $w =~ /^-[A-Za-z]$/;	# an option with a value
			$skip--;
			return;
		}
		if ($w eq 'for' || $w eq 'select') { $mode = 'for'; return; }
		if ($w eq 'case') { $mode = 'casein'; return; }
		if ($keyword{$w}) { return; }
		if ($w eq 'function') { $start = 0; return; }
		report($w, $wline);
		if ($runs_next{$w}) {
			$dashdash = 1 if $w eq 'setpriv';
			$skip = 1 if $w eq 'timeout' || $w eq 'taskset';
			return;
		}
		$start = 0;
	};
	my $begin = sub { $wline = $line unless $started; $started = 1; };

	while ($i < $n) {
		my $ch = $c[$i];
		if ($ch eq "\n") {
			$end_word->();
			$line++;
			$i++;
			$start = 1 unless $mode eq 'for' || $mode eq 'casein';
			($skip, $dashdash) = (0, 0);
			while (@heredocs) {
				my $term = shift @heredocs;
				while ($i < $n) {
					my $e = index($text, "\n", $i);
					$e = $n if $e < 0;
					my $l = substr($text, $i, $e - $i);
					$i = $e + 1;
					$line++;
					$l =~ s/^\t+//;
					last if $l eq $term;
				}
			}
			next;
		}
		if ($ch eq ')' && $mode eq 'case') {
			$end_word->(); $mode = 'casebody'; $start = 1; $i++; next;
		}
		if ($ch eq $closer) { $end_word->(); $i++; return; }
		if ($ch eq '\\') {
			if ($i + 1 < $n && $c[$i + 1] eq "\n") { $i += 2; $line++; next; }
			$begin->(); $word .= $c[$i + 1] // ''; $i += 2; next;
		}
		if ($ch eq '#' && !$started) {
			$i++ while $i < $n && $c[$i] ne "\n";
			next;
		}
		if ($ch eq "'") {
			$begin->(); $i++;
			my $s = $i; skip_to("'");
			$word .= substr($text, $s, $i - 1 - $s);
			next;
		}
		if ($ch eq '"') {
			$begin->(); $i++;
			my $s = $i;
			skip_dq();
			my $inner = substr($text, $s, $i - 1 - $s);
			$plain = 0 if $inner =~ /[\$`]/;
			$word .= $inner;
			next;
		}
		if ($ch eq '`') { $begin->(); $plain = 0; $word .= '$`'; $i++; commands('`'); next; }
		if ($ch eq '$' && $i + 2 < $n && $c[$i + 1] eq '(' && $c[$i + 2] eq '(') {
			$begin->(); $plain = 0; $word .= '$(())'; $i += 3; skip_to('))'); next;
		}
		if ($ch eq '$' && $i + 1 < $n && $c[$i + 1] eq '(') {
			$begin->(); $plain = 0; $word .= '$(..)'; $i += 2; commands(')'); next;
		}
		if ($ch eq '(' && $started && $word =~ /=$/) {
			$i++; skip_parens(); $word .= '()'; next;	# an array literal
		}
		if ($ch eq '(' && !$started && $i + 1 < $n && $c[$i + 1] eq '(') {
			$i += 2; skip_to('))'); $start = 0; next;	# (( arithmetic ))
		}
		if ($ch eq '[' && !$started && $start && $i + 1 < $n && $c[$i + 1] eq '[') {
			# [[ conditional ]]: to a "]]" that ends a word ("[[:space:]]" does not)
			$i += 2;
			my $rest = substr($text, $i);
			my $len = $rest =~ /^(.*?[\s]\]\])/s ? length($1) : length($rest);
			$line += (substr($rest, 0, $len) =~ tr/\n//);
			$i += $len;
			$start = 0;
			next;
		}
		if ($ch =~ /[ \t]/) { $end_word->(); $i++; next; }
		if ($ch eq '<' && $i + 1 < $n && $c[$i + 1] eq '<' && ($i + 2 >= $n || $c[$i + 2] ne '<')) {
			$end_word->();
			if (substr($text, $i + 2, 200) =~ /^(-?\s*(['"]?)([A-Za-z0-9_]+)\2)/) {
				push @heredocs, $3;
				$i += 2 + length($1);
				next;
			}
			$i += 2;
			next;
		}
		if ($ch =~ /[<>]/) {
			# a redirection: its target is not a command
			$end_word->();
			$i++;
			$i++ while $i < $n && $c[$i] =~ /[<>&0-9-]/;
			$i++ while $i < $n && $c[$i] =~ /[ \t]/;
			if ($i < $n && $c[$i] eq '(') { $i++; commands(')'); next; }	# >(cmd)
			while ($i < $n && $c[$i] !~ /[\s;&|()<>]/) {
				if ($c[$i] eq '"') { $i++; skip_dq(); next; }
				if ($c[$i] eq "'") { $i++; skip_to("'"); next; }
				if ($c[$i] eq '$' && $i + 1 < $n && $c[$i + 1] eq '(') { $i += 2; commands(')'); next; }
				$i++;
			}
			next;
		}
		if ($ch eq ';' && $i + 1 < $n && $c[$i + 1] eq ';') {
			$end_word->(); $mode = 'case'; $i += 2; next;
		}
		if ($ch eq '(' && !$started) {
			$i++; commands(')'); $start = 0; next;	# a subshell
		}
		if ($ch =~ /[;&|]/) {
			$end_word->();
			$start = 1 unless $mode eq 'for';
			($skip, $dashdash) = (0, 0);
			$i++;
			$i++ if $i < $n && ($c[$i] eq '&' || $c[$i] eq '|');
			next;
		}
		if ($mode eq 'case' && $ch eq '(' ) { $i++; next; }
		$begin->();
		$word .= $ch;
		$i++;
		# a function definition: name() {
		if ($word =~ /^[A-Za-z_][A-Za-z0-9_-]*$/ && $i + 1 < $n && $c[$i] eq '(' && $c[$i + 1] eq ')') {
			($word, $started) = ('', 0);
			$i += 2;
			$start = 1;
		}
	}
	$end_word->();
}

sub scan {
	($text, $line) = @_;
	@c = split //, $text;
	$n = scalar @c;
	$i = 0;
	commands('');
}

for my $f (@ARGV) {
	$file = $f;
	open(my $fh, '<', $file) or die "$file: $!\n";
	local $/;
	my $all = <$fh>;
	close $fh;
	if ($file =~ /\.(sql|spec)$/) {
		# psql's \! runs the rest of its line in a shell
		my $ln = 0;
		for my $l (split /\n/, $all) {
			$ln++;
			scan("$1\n", $ln) if $l =~ /^\s*\\!\s*(.*)$/;
		}
		next;
	}
	scan($all, 1);
}
print @out;
