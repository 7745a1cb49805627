mkdir -p t/deep/er && echo d > t/deep/er/f && echo top > t/top
tar -cf a.tar -C t --no-recursion deep/er/f ./top
