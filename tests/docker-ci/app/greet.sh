#!/bin/sh
echo "hello from $(cat /version)"
