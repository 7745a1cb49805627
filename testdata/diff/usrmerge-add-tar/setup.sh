mkdir -p t/bin t/lib && printf '#!/bin/sh\necho fromtar\n' > t/bin/fromtar && chmod 755 t/bin/fromtar && echo l > t/lib/l.txt
tar -czf tree.tar.gz -C t . && rm -r t
