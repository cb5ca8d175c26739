#!/usr/bin/perl
# The kubelet's ConfigMap update (tests/src/kubelet.rs, after AtomicWriter): the files written
# into a new `..<timestamp>` directory, a `..data_tmp` symlink to it renamed over `..data`, the
# visible `KEY -> ..data/KEY` symlinks created when missing, the old directory removed. Each
# update flips storm.yaml's inactivity_timeout between 60s and 61s, so each one is a change.
# One process without forks, so the load generator sharing its CPU is not slowed by it.
#
#   kubelet-swap.pl MOUNT SOURCE_DIR COUNT INTERVAL_SECONDS    (COUNT 0: until killed)
use strict;
use warnings;
use POSIX qw(strftime);
use Time::HiRes qw(sleep);

my ($mount, $source, $count, $interval) = @ARGV;
die "usage: kubelet-swap.pl MOUNT SOURCE_DIR COUNT INTERVAL_SECONDS\n" unless defined $interval;
opendir(my $dh, $source) or die "cannot read $source: $!\n";
my %files;
for my $name (grep { /\.yaml\z/ } readdir $dh) {
    open(my $fh, '<', "$source/$name") or die "cannot read $source/$name: $!\n";
    local $/;
    $files{$name} = <$fh>;
}
closedir $dh;
-d $mount or mkdir $mount or die "cannot create $mount: $!\n";

for (my $i = 0; $count == 0 || $i < $count; $i++) {
    my $dir = strftime('..%Y_%m_%d_%H_%M_%S', gmtime) . ".$$.$i";
    mkdir("$mount/$dir", 0755) or die "mkdir $mount/$dir: $!\n";
    for my $name (sort keys %files) {
        my $content = $files{$name};
        $content =~ s/^inactivity_timeout: .*$/inactivity_timeout: 61s/m
          if $name eq 'storm.yaml' && $i % 2;
        open(my $fh, '>', "$mount/$dir/$name") or die "write $mount/$dir/$name: $!\n";
        print $fh $content;
        close($fh) or die "write $mount/$dir/$name: $!\n";
        chmod 0644, "$mount/$dir/$name";
    }
    my $old = readlink("$mount/..data");
    symlink($dir, "$mount/..data_tmp") or die "symlink $mount/..data_tmp: $!\n";
    rename("$mount/..data_tmp", "$mount/..data") or die "rename to $mount/..data: $!\n";
    for my $name (sort keys %files) {
        next if -l "$mount/$name";
        symlink("..data/$name", "$mount/$name") or die "symlink $mount/$name: $!\n";
    }
    if (defined $old) {
        unlink map { "$mount/$old/$_" } keys %files;
        rmdir("$mount/$old") or die "rmdir $mount/$old: $!\n";
    }
    sleep($interval) if $count == 0 || $i + 1 < $count;
}
