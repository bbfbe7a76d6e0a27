import sys

from mistral_workflows.cli import main

sys.exit(main())
