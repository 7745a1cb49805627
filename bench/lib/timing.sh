# Sourced by the bench scripts: the timing helpers they share.
#   median   the median of the numbers on stdin, one a line
#   now      the wall clock in seconds, with nanoseconds
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
