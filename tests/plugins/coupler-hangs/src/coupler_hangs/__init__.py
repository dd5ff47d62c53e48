"""An import that never finishes (as one blocked on a network share or a lock would): Coupler must name it
after a bounded wait and go on."""

import time

while True:
    time.sleep(60)
