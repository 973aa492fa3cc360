// Kernel-TCP side of bench:tcp, run inside a network namespace (`ip netns exec <ns> node tcp-ns-tool.js …`):
//   sink <port>                      accept one connection, count its bytes until FIN, print {"bytes","ms"} and exit
//   source <host> <port> <seconds>   connect, send zeros for <seconds>, half-close, wait for the peer's FIN,
//                                    print {"bytes","ms"} and exit
//   closer <port>...                 accept connections on each port forever; end each once the client has ended it
// Every mode prints "READY" once it listens or has connected. Plain Node so it needs nothing but this file.
import { createConnection, createServer } from 'node:net';

const CHUNK = Buffer.alloc(128 * 1024);

function done(result: Record<string, number>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

function sink(port: number): void {
  const server = createServer((socket) => {
    server.close();
    const start = performance.now();
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('end', () => {
      const ms = performance.now() - start;
      socket.end();
      done({ bytes, ms });
    });
    socket.on('error', (error) => fail(error));
  });
  server.listen(port, () => process.stdout.write('READY\n'));
}

function source(host: string, port: number, seconds: number): void {
  const socket = createConnection({ host, port });
  socket.setNoDelay(true);
  let bytes = 0;
  let start = 0;
  socket.on('connect', () => {
    process.stdout.write('READY\n');
    start = performance.now();
    const until = start + seconds * 1000;
    const pump = (): void => {
      while (performance.now() < until) {
        bytes += CHUNK.length;
        if (!socket.write(CHUNK)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    pump();
  });
  socket.resume();
  socket.on('end', () => done({ bytes, ms: performance.now() - start }));
  socket.on('error', (error) => fail(error));
}

function closer(ports: number[]): void {
  let listening = 0;
  for (const port of ports) {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.resume();
      socket.on('end', () => socket.end());
    });
    server.listen(port, () => {
      if (++listening === ports.length) process.stdout.write('READY\n');
    });
  }
}

function fail(error: Error): never {
  process.stderr.write(`tcp-ns-tool: ${error.message}\n`);
  process.exit(1);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'sink') sink(Number(args[0]));
else if (mode === 'source') source(String(args[0]), Number(args[1]), Number(args[2]));
else if (mode === 'closer') closer(args.map(Number));
else fail(new Error(`unknown mode '${mode}': use sink <port> | source <host> <port> <seconds> | closer <port>...`));
