import sys

from retention.run import main

sys.exit(main())
