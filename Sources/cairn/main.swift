import CairnCLI

await CairnMain.run()
