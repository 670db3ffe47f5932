// The `layerwise` command-line tool; the commands live in the LayerwiseCLI module.
import LayerwiseCLI

LayerwiseCommand.main()
