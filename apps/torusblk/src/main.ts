import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { VERSION } from './version.js'

// torusblk is the client side of Torus. Its commands arrive with the distributed data path;
// for now it explains what it will do and exits non-zero on any command.
const notYet = (what: string) => (): never => {
  process.stderr.write(`torusblk: ${what} is not available in this version; volumes are served over NBD by torusd itself (see README)\n`)
  process.exit(1)
}

await yargs(hideBin(process.argv))
  .scriptName('torusblk')
  .usage('$0 <command>\n\nClient side of Torus: NBD gateway, kernel attach and the Kubernetes FlexVolume driver.')
  .command('nbdserver', 'Serve cluster volumes over NBD without local storage (coming with the distributed data path)', {}, notYet('nbdserver'))
  .command('nbd VOLUME DEVICE', 'Attach VOLUME to a kernel /dev/nbdX through nbd-client (coming)', {}, notYet('nbd'))
  .command('flex', 'Kubernetes FlexVolume driver (coming)', {}, notYet('flex'))
  .demandCommand(1, 'name a command')
  .strict()
  .help()
  .alias('h', 'help')
  .version(VERSION)
  .wrap(Math.min(110, process.stdout.columns ?? 110))
  .fail((msg) => {
    process.stderr.write(`torusblk: ${msg}\nRun torusblk --help for usage.\n`)
    process.exit(2)
  })
  .parseAsync()
