from tbhub.interfaces.cli.main import main

main()
