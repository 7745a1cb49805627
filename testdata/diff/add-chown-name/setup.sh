mkdir -p tree/d && echo x > tree/d/x && chown -R 7:8 tree && tar -cf t.tar -C tree . && rm -r tree
