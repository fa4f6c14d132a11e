"""The process that fsyncs a SQLite WAL for `workflows.walsync.WalSync`.

Run as a script (`python -I -S fsyncd.py PATH`), it imports nothing but `os` and `sys`.
For each request read on stdin (the asker sends one byte and waits for the answer before
the next) it fdatasyncs PATH and answers one byte on stdout: 0 once the data is on disk,
else the errno of the failure. The fsync runs in a process of its own,
not a thread, because a thread must take the GIL back from a busy event loop (up to the
switch interval, 5 ms, each of the several times it does) before the loop hears that the
disk is done; a process answers through a pipe the loop's selector already watches.
Linux flushes a file's data whichever descriptor asks, so our own descriptor of the
WAL covers what the bot's connection wrote. It exits when stdin closes (the bot stopped
or died).
"""

from __future__ import annotations

import os
import sys


def serve(path: str) -> None:
    fd = -1
    while os.read(0, 1):
        try:
            # The WAL outlives every connection but the last one's close: reopen if replaced.
            if fd >= 0 and os.fstat(fd).st_nlink == 0:
                os.close(fd)
                fd = -1
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:  # the last connection closed: all is in the database
                    os.write(1, b"\0")
                    continue
            os.fdatasync(fd)
            answer = 0
        except OSError as error:
            answer = (error.errno or 5) & 0xFF  # EIO if the failure carries no errno
        try:
            os.write(1, bytes([answer]))
        except OSError:  # nobody is listening any more
            return


if __name__ == "__main__":
    serve(sys.argv[1])
