// A tiny aedes broker for tests/integration/test_brokers.py:
//   node aedes_broker.mjs PORT MODULES_DIR
// listens on 127.0.0.1:PORT with aedes from MODULES_DIR/node_modules and
// in-memory persistence; SIGTERM stops it.
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [port, dir] = process.argv.slice(2)
const { Aedes } = await import(pathToFileURL(path.join(dir, 'node_modules', 'aedes', 'aedes.js')).href)
const broker = await Aedes.createBroker()
const server = net.createServer(broker.handle)
server.listen(Number(port), '127.0.0.1', () => console.log(`aedes listening on 127.0.0.1:${port}`))
process.on('SIGTERM', () => { server.close(); broker.close(() => process.exit(0)) })
