python3 -c '
import os
os.setxattr("a.txt", "user.greeting", b"hello")
os.setxattr("dir/b.txt", "user.one", b"1")
os.setxattr("dir", "user.dir", b"d")
'
