mkdir -p t/sub && echo one > t/one && echo two > t/sub/two && chmod 750 t/sub && chmod 600 t/one && chown 123:456 t/one
ln -s one t/link && ln t/sub/two t/sub/two-hard
tar --zstd -cf a.tar.zst -C t . && rm -r t
