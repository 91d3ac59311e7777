// A local stand-in for Stripe, for the browser journeys against the real server. It
// speaks Stripe's wire format for exactly the calls Plinth makes (api/src/billing/
// stripe.rs; the Rust suite's stand-in is tests/api/helpers/stripe.rs): form-encoded
// requests, JSON answers, Stripe's error bodies, a repeated idempotency key answered
// with the first answer. Its Checkout URL is a page of its own with a Pay button, the
// way a customer meets Stripe's hosted page: paying redirects to the session's
// success_url, and the events a payment makes (checkout.session.completed,
// customer.subscription.created, invoice.paid) are queued, to be delivered to the
// server's POST /webhooks/stripe, signed with Stripe's scheme, when the test asks
// (POST /_control/flush) — like Stripe's own webhooks, which may arrive after the
// customer is back on the site. POST /_control/payment-failed and /_control/unpaid
// play a failed renewal (invoice.payment_failed, then the subscription past_due) and
// the end of Stripe's retries (the subscription unpaid).
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The secret key the server is started with. */
export const SECRET_KEY = 'sk_test_plinth_e2e';
/** The webhook signing secret the server verifies with. */
export const WEBHOOK_SECRET = 'whsec_plinth_e2e';

type Json = Record<string, unknown>;

interface Session extends Json {
  id: string;
  customer: string;
  status: string;
  success_url: string;
  cancel_url: string;
  url: string;
}

interface Delivery {
  type: string;
  status: number;
}

/** Stripe's signature header for `payload` at `t` (unix seconds). */
export function sign(payload: string, secret: string, t: number): string {
  const v1 = createHmac('sha256', secret).update(`${t}.${payload}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export class StripeStandIn {
  /** Its base URL, `http://127.0.0.1:PORT/` (PLINTH_STRIPE_API_BASE). */
  url = '';
  /** The app's base URL, where events go (set once the server listens). */
  appUrl = '';
  readonly requests: { route: string; form: Record<string, string> }[] = [];
  #server: Server | null = null;
  #customers = new Map<string, Json>();
  #sessions: Session[] = [];
  #subscriptions: Json[] = [];
  #invoices: Json[] = [];
  #replies = new Map<string, { status: number; body: Json }>();
  #queue: Json[] = [];
  #events = 0;
  #lastCreated = 0;

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((e: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { type: 'api_error', message: String(e) } }));
      });
    });
    await new Promise<void>((done) => this.#server!.listen(0, '127.0.0.1', done));
    const { port } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((done) => (this.#server ? this.#server.close(() => done()) : done()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', this.url);
    const form: Record<string, string> = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    for (const [k, v] of url.searchParams) form[k] = v;
    const path = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';

    if (path[0] === 'v1') {
      const route = `${method} ${url.pathname}`;
      this.requests.push({ route, form });
      if (req.headers.authorization !== `Bearer ${SECRET_KEY}`) {
        return json(res, 401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } });
      }
      const key = req.headers['idempotency-key'];
      const replyKey = typeof key === 'string' ? `${route} ${key}` : null;
      const earlier = replyKey ? this.#replies.get(replyKey) : undefined;
      if (earlier) return json(res, earlier.status, earlier.body);
      const [status, body] = this.#api(method, path.slice(1), form, typeof key === 'string' ? key : null);
      if (replyKey) this.#replies.set(replyKey, { status, body });
      return json(res, status, body);
    }
    if (path[0] === 'checkout' && path[1]) {
      const s = this.#sessions.find((x) => x.id === path[1]);
      if (!s) return html(res, 404, '<h1>No such checkout session</h1>');
      if (method === 'POST' && path[2] === 'pay') return this.#pay(s, res);
      return html(res, 200, this.#checkoutPage(s));
    }
    if (path[0] === 'portal') {
      const back = url.searchParams.get('return') ?? this.appUrl;
      return html(res, 200, `<h1>Billing portal (stand-in)</h1><p><a href="${escape(back)}">Return</a></p>`);
    }
    if (path[0] === '_control' && method === 'POST') {
      if (path[1] === 'flush') return json(res, 200, { delivered: await this.flush() });
      const email = url.searchParams.get('email') ?? '';
      const sub = this.#subscriptionOf(email);
      if (!sub) return json(res, 404, { error: `no subscription for ${email}` });
      if (path[1] === 'payment-failed') return json(res, 200, { delivered: await this.paymentFailed(sub) });
      if (path[1] === 'unpaid') return json(res, 200, { delivered: await this.#update(sub, 'unpaid') });
    }
    if (path[0] === '_control' && path[1] === 'requests') return json(res, 200, { requests: this.requests });
    return json(res, 404, { error: { type: 'invalid_request_error', message: `no route ${method} ${url.pathname}` } });
  }

  /** The Stripe API: `path` after `/v1/`. */
  #api(method: string, path: string[], form: Record<string, string>, key: string | null): [number, Json] {
    const missing = (what: string, id: string): [number, Json] => [
      404,
      { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such ${what}: '${id}'` } },
    ];
    const route = `${method} ${path.map((p, i) => (i > 0 && /_/.test(p) ? ':id' : p)).join('/')}`;
    switch (route) {
      case 'POST customers': {
        const id = `cus_${(key ?? `anon${this.#customers.size}`).replace(/[^A-Za-z0-9]/g, '').slice(-24)}`;
        const c = { id, object: 'customer', email: form.email ?? null, metadata: { user_id: form['metadata[user_id]'] }, livemode: false };
        this.#customers.set(id, c);
        return [200, c];
      }
      case 'GET customers/:id': {
        const c = this.#customers.get(path[1]!);
        if (!c) return missing('customer', path[1]!);
        return [200, { ...c, tax_ids: { object: 'list', data: [], has_more: false }, address: null }];
      }
      case 'POST checkout/sessions': {
        const customer = form.customer ?? '';
        if (!this.#customers.has(customer)) {
          return [400, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'customer', message: `No such customer: '${customer}'` } }];
        }
        const id = `cs_test_${this.#sessions.length + 1}`;
        const s: Session = {
          id,
          object: 'checkout.session',
          mode: 'subscription',
          customer,
          status: 'open',
          payment_status: 'unpaid',
          expires_at: Number(form.expires_at) || null,
          success_url: form.success_url ?? '',
          cancel_url: form.cancel_url ?? '',
          price: form['line_items[0][price]'] ?? '',
          trial_days: Number(form['subscription_data[trial_period_days]']) || 0,
          metadata: Object.fromEntries(Object.entries(form).flatMap(([k, v]) => (k.startsWith('metadata[') ? [[k.slice(9, -1), v]] : []))),
          url: `${this.url}checkout/${id}`,
          livemode: false,
        };
        this.#sessions.push(s);
        return [200, s];
      }
      case 'GET checkout/sessions/:id': {
        const s = this.#sessions.find((x) => x.id === path[2]);
        return s ? [200, s] : missing('checkout.session', path[2]!);
      }
      case 'POST checkout/sessions/:id/expire': {
        const s = this.#sessions.find((x) => x.id === path[2]);
        if (!s) return missing('checkout.session', path[2]!);
        if (s.status !== 'open') {
          return [400, { error: { type: 'invalid_request_error', message: 'Only Checkout Sessions with a status in ["open"] can be expired.' } }];
        }
        s.status = 'expired';
        return [200, s];
      }
      case 'POST billing_portal/sessions': {
        const back = form.return_url ?? this.appUrl;
        return [200, { id: 'bps_test_1', object: 'billing_portal.session', customer: form.customer, return_url: back, url: `${this.url}portal?return=${encodeURIComponent(back)}` }];
      }
      case 'GET subscriptions': {
        const subs = this.#subscriptions.filter((s) => !form.customer || s.customer === form.customer);
        return [200, { object: 'list', url: '/v1/subscriptions', has_more: false, data: subs }];
      }
      case 'GET invoices': {
        const invs = this.#invoices.filter((i) => !form.customer || i.customer === form.customer);
        return [200, { object: 'list', url: '/v1/invoices', has_more: false, data: invs }];
      }
      case 'GET charges/:id':
        return missing('charge', path[1]!);
      default:
        return [404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: /v1/${path.join('/')})` } }];
    }
  }

  #checkoutPage(s: Session): string {
    const cancel = s.cancel_url ? `<a href="${escape(s.cancel_url)}">Cancel</a>` : '';
    return `<h1>Pay (Stripe stand-in)</h1>
<p>Subscription to <strong>${escape(String(s.price))}</strong>${s.trial_days ? `, ${Number(s.trial_days)}-day trial` : ''}.</p>
${s.status === 'open' ? `<form method="post" action="/checkout/${escape(s.id)}/pay"><button type="submit">Pay</button></form>` : `<p>This session is ${escape(s.status)}.</p>`}
<p>${cancel}</p>`;
  }

  /** The customer paid: the session completes, a subscription starts; the events are queued. */
  #pay(s: Session, res: ServerResponse): void {
    if (s.status === 'open') {
      const now = this.#now();
      const trial = Number(s.trial_days) > 0;
      s.status = 'complete';
      s.payment_status = trial ? 'no_payment_required' : 'paid';
      const id = `sub_${s.id.replace(/[^A-Za-z0-9]/g, '')}`;
      s.subscription = id;
      const sub: Json = {
        id,
        object: 'subscription',
        customer: s.customer,
        status: trial ? 'trialing' : 'active',
        cancel_at_period_end: false,
        cancel_at: null,
        created: now,
        livemode: false,
        billing_cycle_anchor: now,
        current_period_start: now,
        current_period_end: now + (trial ? Number(s.trial_days) : 30) * 86_400,
        trial_end: trial ? now + Number(s.trial_days) * 86_400 : null,
        metadata: s.metadata,
        items: { object: 'list', data: [{ id: `si_${id}`, object: 'subscription_item', quantity: 1, price: { id: s.price, object: 'price', currency: 'eur' } }] },
      };
      this.#subscriptions.push(sub);
      const invoice = this.#invoice(sub, trial ? 0 : 4900, 'paid');
      this.#queue.push(
        this.#event('checkout.session.completed', now, s),
        this.#event('customer.subscription.created', now, { ...sub }),
        this.#event('invoice.paid', now, invoice),
      );
    }
    const back = s.success_url.replace('{CHECKOUT_SESSION_ID}', s.id);
    res.writeHead(303, { location: back });
    res.end();
  }

  #invoice(sub: Json, cents: number, status: string): Json {
    const n = this.#invoices.length + 1;
    const now = this.#now();
    const inv: Json = {
      id: `in_test_${n}`,
      object: 'invoice',
      customer: sub.customer,
      subscription: sub.id,
      number: `E2E-${String(n).padStart(4, '0')}`,
      status,
      currency: 'eur',
      subtotal: cents,
      total: Math.round(cents * 1.2),
      amount_paid: status === 'paid' ? Math.round(cents * 1.2) : 0,
      amount_due: Math.round(cents * 1.2),
      total_taxes: [{ amount: Math.round(cents * 0.2), taxability_reason: 'standard_rated' }],
      hosted_invoice_url: `${this.url}invoice/in_test_${n}`,
      invoice_pdf: `${this.url}invoice/in_test_${n}/pdf`,
      period_start: now,
      period_end: now + 30 * 86_400,
      created: now,
    };
    this.#invoices.push(inv);
    return inv;
  }

  /** A renewal's payment failed: the invoice stays open, the subscription is past_due. */
  async paymentFailed(sub: Json): Promise<Delivery[]> {
    const invoice = this.#invoice(sub, 4900, 'open');
    const delivered = [await this.deliver(this.#event('invoice.payment_failed', this.#now(), invoice))];
    return [...delivered, ...(await this.#update(sub, 'past_due'))];
  }

  async #update(sub: Json, status: string): Promise<Delivery[]> {
    sub.status = status;
    return [await this.deliver(this.#event('customer.subscription.updated', this.#now(), { ...sub }))];
  }

  #subscriptionOf(email: string): Json | undefined {
    const ids = [...this.#customers.values()].filter((c) => c.email === email).map((c) => c.id);
    return this.#subscriptions.findLast((s) => ids.includes(s.customer as string));
  }

  /** Seconds, strictly increasing: each event of a sequence is newer than the one before. */
  #now(): number {
    this.#lastCreated = Math.max(Math.floor(Date.now() / 1000), this.#lastCreated + 1);
    return this.#lastCreated;
  }

  #event(type: string, created: number, object: Json): Json {
    this.#events += 1;
    return { id: `evt_e2e_${this.#events}`, object: 'event', type, created, livemode: false, api_version: '2023-10-16', pending_webhooks: 1, data: { object } };
  }

  /** Delivers the queued events, in order. */
  async flush(): Promise<Delivery[]> {
    const out: Delivery[] = [];
    while (this.#queue.length > 0) out.push(await this.deliver(this.#queue.shift()!));
    return out;
  }

  /** Posts `event` to the app's webhook, signed now. */
  async deliver(event: Json): Promise<Delivery> {
    const payload = JSON.stringify(event);
    const res = await fetch(new URL('/webhooks/stripe', this.appUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload, WEBHOOK_SECRET, Math.floor(Date.now() / 1000)) },
      body: payload,
    });
    await res.text();
    return { type: event.type as string, status: res.status };
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_e2e_${Date.now()}` });
  res.end(JSON.stringify(body));
}

function html(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stripe stand-in</title></head><body><main>${body}</main></body></html>`);
}
