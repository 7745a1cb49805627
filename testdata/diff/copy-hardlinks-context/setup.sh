ln d/one d/two
mkdir -p d/sub && ln d/one d/sub/three
