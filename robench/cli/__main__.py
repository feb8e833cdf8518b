from robench.cli.app import main

main()
