from tbhub.interfaces.cli.main import main

if __name__ == "__main__":  # worker processes may import __main__
    main()
