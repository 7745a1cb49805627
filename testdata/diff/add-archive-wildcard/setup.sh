mkdir -p t && echo x > t/x && tar -cf one.tar -C t . && echo y > t/y && tar -cf two.tar -C t . && rm -r t
