from pdedit.cli import main

main()
