"""Prints the first port from START (of 100) that ADDRESS can bind: `python scripts/free_port.py START ADDRESS`.
Used by `make lab` and `make tensorboard`, so a port in use moves on to the next free one."""
import socket
import sys

start, ip = int(sys.argv[1]), sys.argv[2]
for p in range(start, start + 100):
    with socket.socket() as s:
        try:
            s.bind((ip, p))
        except OSError:
            continue
        print(p)
        break
else:
    sys.exit(f"no free port in {start}..{start + 99}")
