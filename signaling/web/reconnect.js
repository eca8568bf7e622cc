// Resuming the session after a lost connection (docs/protocol.md, Resuming a session): the
// socket closed without our `leave`, or a media connection failed. The server keeps us for its
// grace period; this tries to come back within it, with backoff and jitter (backoff.js), as the
// same participant. What the `joined` of a resume means for the page is app.js's.

import { nextRetry } from "./backoff.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Reconnector {
  /**
   * `deps`: `{session (room-session.js), media() ("connection" or "none", as we joined),
   * onChange(reconnecting), onResumed(joined), onGaveUp(error), rejoin()}`. `onGaveUp` gets
   * `{code, message}` when the session cannot be resumed (the server ended it, or its grace
   * period passed): the page ends the session as before. `rejoin()` (optional) is asked when
   * the server no longer knows the session (`resume_failed`): it joins afresh and resolves
   * true once in the room, false to be asked again after the next wait (until the grace
   * period ends).
   */
  constructor(deps) {
    this.deps = deps;
    /** Whether a resume is under way. */
    this.active = false;
    this._run = 0;
  }

  /** The connection was lost: resume (nothing when a resume is already under way). */
  start() {
    if (this.active) {
      return;
    }
    const { session } = this.deps;
    if (!session.canResume) {
      this.deps.onGaveUp({ code: "disconnected", message: "socket closed" });
      return;
    }
    this.active = true;
    this._run += 1;
    const run = this._run;
    // Both peer connections are dead or dying, and the server closes them too: new ones follow.
    session.close();
    this.deps.onChange(true);
    const deadline = performance.now() + session.reconnectGrace * 1000;
    this._retry(run, deadline).catch((error) => {
      console.error("resuming failed", error);
      this._giveUp(run, { code: "disconnected", message: String(error?.message ?? error) });
    });
  }

  /** The page left or ended the session: stop trying. */
  stop() {
    this._run += 1;
    this.active = false;
  }

  async _retry(run, deadline) {
    let gone = false; // the server no longer knows the session: join afresh from now on
    for (let attempt = 1; ; attempt += 1) {
      const wait = nextRetry({ attempt, now: performance.now(), deadline, random: Math.random() });
      if (wait === null) {
        this._giveUp(run, { code: "disconnected", message: "could not reconnect in time" });
        return;
      }
      await sleep(wait);
      if (run !== this._run) {
        return;
      }
      if (gone) {
        // As "Join again" would: the node that held the room died and another took it over.
        const rejoined = await this.deps.rejoin();
        if (run !== this._run) {
          return;
        }
        if (rejoined) {
          this.active = false;
          this.deps.onChange(false);
          return;
        }
        continue; // refused for now ("try again" while the room moves): the next wait
      }
      let joined;
      try {
        joined = await this.deps.session.resume(this.deps.media());
      } catch (error) {
        if (run !== this._run) {
          return;
        }
        if (error.code === "resume_failed") {
          if (!this.deps.rejoin) {
            this._giveUp(run, { code: error.code, message: error.message });
            return;
          }
          gone = true;
          attempt = 0; // the first join goes out after the shortest wait
        }
        continue; // not through yet: the network is still down, or the server restarting
      }
      if (run !== this._run) {
        return;
      }
      this.active = false;
      this.deps.onChange(false);
      this.deps.onResumed(joined);
      return;
    }
  }

  _giveUp(run, error) {
    if (run !== this._run) {
      return;
    }
    this.active = false;
    this.deps.onChange(false);
    this.deps.onGaveUp(error);
  }
}
