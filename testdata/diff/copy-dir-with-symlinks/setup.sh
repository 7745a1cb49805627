ln -s file.txt tree/rel
ln -s /etc/passwd tree/abs
ln -s missing tree/dangling
ln -s sub tree/subdir
ln -s ../file.txt tree/sub/up
