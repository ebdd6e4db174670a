"""Allow ``python -m lora_manager``."""

from lora_manager.console import main

main()
