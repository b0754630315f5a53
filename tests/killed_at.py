"""Started by test_crash_safety.py: runs the analogize command line and kills itself with SIGKILL
at a precise point of a write, which a watcher outside could only hit by chance:

    python killed_at.py EVENT FRAGMENT COUNT ANALOGIZE-ARGUMENTS...

dies at the COUNT-th audit event EVENT (`sys.addaudithook`: "open" as a file is opened, "os.rename"
before os.replace renames) whose first argument, a path, contains FRAGMENT; before the event's
operation runs. Exits as the command does if that event never comes.
"""

import os
import signal
import sys

from analogize.cli import main

event, fragment, count = sys.argv[1], sys.argv[2], int(sys.argv[3])


def kill_at(name: str, arguments: tuple) -> None:
    global count
    if name == event and fragment in str(arguments[0]):
        count -= 1
        if count == 0:
            os.kill(os.getpid(), signal.SIGKILL)


sys.addaudithook(kill_at)
sys.exit(main(sys.argv[4:]))
