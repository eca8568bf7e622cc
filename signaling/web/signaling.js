// The room's WebSocket (docs/protocol.md): JSON text frames, requests matched to replies by "id".

/** A failed request: `code` is the protocol's error code; `retryAfter` is set for rate_limited. */
export class ServerError extends Error {
  constructor(code, message, retryAfter) {
    super(message || code);
    this.name = "ServerError";
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The reply types that answer a request carrying an "id". */
const REPLY_TYPES = new Set(["joined", "publish_answer", "pong", "error"]);

/**
 * One signalling connection. Server messages other than replies are handed to `onMessage(msg)`;
 * `onClose(event)` is called once when the socket closes, whoever closed it.
 */
export class Signaling {
  constructor(url) {
    this.url = url;
    this.socket = null;
    this.onMessage = () => {};
    this.onClose = () => {};
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject}
    this._keepalive = null;
  }

  /** Opens the socket; resolves once it is open. */
  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.addEventListener("open", () => {
        opened = true;
        // The server's 60 s silence limit is met by WebSocket-level pings; this application
        // ping also keeps idle proxies and NAT mappings from dropping the socket.
        this._keepalive = setInterval(() => this.send({ type: "ping" }), 25000);
        resolve();
      });
      socket.addEventListener("message", (event) => this._receive(event.data));
      socket.addEventListener("close", (event) => {
        clearInterval(this._keepalive);
        for (const { reject: fail } of this._pending.values()) {
          fail(new ServerError("disconnected", "The connection to the server was lost."));
        }
        this._pending.clear();
        if (!opened) {
          reject(new ServerError("unreachable", "Cannot reach the server."));
        }
        this.onClose(event);
      });
    });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Sends one message without waiting for a reply. */
  send(message) {
    if (this.isOpen) {
      this.socket.send(JSON.stringify(message));
    }
  }

  /** Sends a message with a fresh id; resolves with the reply or rejects with a ServerError. */
  request(message) {
    const id = `c${this._nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(new ServerError("disconnected", "Not connected to the server."));
        return;
      }
      this._pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...message, id }));
    });
  }

  close() {
    if (this.socket !== null && this.socket.readyState <= WebSocket.OPEN) {
      this.socket.close(1000, "bye");
    }
  }

  _receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("signalling: not JSON", text);
      return;
    }
    const waiter = message.id !== undefined ? this._pending.get(message.id) : undefined;
    if (waiter !== undefined && REPLY_TYPES.has(message.type)) {
      this._pending.delete(message.id);
      if (message.type === "error") {
        waiter.reject(new ServerError(message.code, message.message, message.retry_after));
      } else {
        waiter.resolve(message);
      }
      return;
    }
    this.onMessage(message);
  }
}

/** The WebSocket URL of the server that served this page. */
export function signalingUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}
