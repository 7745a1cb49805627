ln -s a.txt b.txt
ln -s d1 d2
