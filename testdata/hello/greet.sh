#!/bin/sh
echo "$GREETING from $(hostname): $(cat /app/built.txt)"
