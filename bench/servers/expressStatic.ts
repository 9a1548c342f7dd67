/**
 * express + serve-static (`express.static` is serve-static) serving a directory, one process:
 * `node expressStatic.ts <port> <dir>`. ETag and Last-Modified on, as its defaults.
 */
import express from "express";

const port = Number(process.argv[2]);
const dir = process.argv[3]!;
const app = express();
app.disable("x-powered-by");
app.use(express.static(dir));
app.listen(port, "127.0.0.1");
