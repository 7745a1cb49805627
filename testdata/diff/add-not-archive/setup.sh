echo hello | gzip -n > plain.gz
echo "not a tar" > notatar.tar
echo "not gzip either" > fake.tar.gz
