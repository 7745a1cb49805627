mkdir -p t/sub && echo replaced > t/data && echo new > t/sub/deep.txt && echo n > t/new
tar -czf a.tar.gz -C t . && rm -r t
