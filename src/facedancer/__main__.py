from facedancer.cli import main

main()
