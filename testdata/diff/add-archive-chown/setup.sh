mkdir -p t/d && echo f > t/d/f && chown -R 7:8 t && tar -cf a.tar -C t . && rm -r t
