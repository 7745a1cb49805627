mkdir t && echo l > t/l && tar -cf local.tar -C t . && rm -r t
