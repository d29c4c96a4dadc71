from daedalus.cli.app import main

main()
