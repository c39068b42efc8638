import sys

from mpg_sam2.cli import main

sys.exit(main())
