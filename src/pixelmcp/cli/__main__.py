from pixelmcp.cli import main

main()
