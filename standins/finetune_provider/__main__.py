from standins.finetune_provider.server import main

main()
