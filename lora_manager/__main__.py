"""Allow ``python -m lora_manager``."""

from lora_manager.cli import main

main()
