mkdir -p empty nested/inner && chmod 0700 nested/inner
