ln -s a.txt link.txt
ln -s real dirlink
