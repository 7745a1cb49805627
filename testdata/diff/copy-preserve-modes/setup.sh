mkdir -p tree/private tree/shared
for m in 4755 2755 1777 0600 0444 0700 0000; do echo $m > tree/m$m; chmod $m tree/m$m; done
chmod 0700 tree/private && chmod 2775 tree/shared && echo p > tree/private/p
chown -R 1234:5678 tree
