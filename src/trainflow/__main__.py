from trainflow.cli.main import main

main()
