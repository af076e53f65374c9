import sys

from tools.ops.doctor import main

sys.exit(main())
