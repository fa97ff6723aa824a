from evtools.cli.app import main

main()
