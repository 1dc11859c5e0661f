//! The demo's fictional shop: services, routes with their latency and status profiles, the
//! queries each route runs, the integrations it calls, the errors it throws, and its users.
//! Everything here is static data; `traffic` turns it into rows.
//!
//! Long because it is data: the shop's services, routes, queries, errors and users.

/// A service of the demo shop, with the hosts it runs on.
pub struct Service {
    pub name: &'static str,
    pub hosts: &'static [&'static str],
    /// Database its queries run against (query_log.database).
    pub database: &'static str,
    /// Health-check latency when healthy, in ms.
    pub check_ms: f64,
    /// Errors a 5xx of this service logs.
    pub errors: &'static [ErrorKind],
}

/// One kind of failure: its type, a message template (`{id}` and `{n}` get filled in, so the
/// stored messages differ while their fingerprint stays the same) and a stack trace.
pub struct ErrorKind {
    pub error_type: &'static str,
    pub message: &'static str,
    pub stack: &'static str,
    /// error_code recorded on the request.
    pub code: &'static str,
}

/// What a route does to the audit trail.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Audit {
    None,
    Login,
    Logout,
    Create(&'static str),
    Update(&'static str),
    Delete(&'static str),
}

/// A call to a third-party integration made while serving a route.
pub struct Outbound {
    pub integration: &'static str,
    pub method: &'static str,
    pub route: &'static str,
    pub median_ms: f64,
    pub sigma: f64,
    /// Probability that the call fails (5xx from the integration).
    pub fail: f64,
}

pub struct Route {
    pub service: usize,
    pub method: &'static str,
    pub path: &'static str,
    /// Relative share of the traffic.
    pub weight: u32,
    /// Median latency (ms) and log-normal spread.
    pub median_ms: f64,
    pub sigma: f64,
    /// Base probability of a 5xx and of a 4xx.
    pub p5xx: f64,
    pub p4xx: f64,
    pub client_errors: &'static [u16],
    /// Median response size in bytes.
    pub bytes: u32,
    /// Whether the caller must be signed in (requests then carry a user id).
    pub signed_in: bool,
    /// Indexes into `QUERIES`.
    pub queries: &'static [usize],
    pub outbound: Option<Outbound>,
    pub audit: Audit,
}

pub struct QuerySpec {
    pub service: usize,
    /// Normalized text, as pg_stat_statements shows it.
    pub sql: &'static str,
    pub median_ms: f64,
    pub sigma: f64,
    pub rows: (u32, u32),
}

pub const WEB: usize = 0;
pub const AUTH: usize = 1;
pub const CATALOG: usize = 2;
pub const SEARCH: usize = 3;
pub const CHECKOUT: usize = 4;
pub const PAYMENTS: usize = 5;
pub const RECOMMENDATIONS: usize = 6;
pub const NOTIFICATIONS: usize = 7;

const NODE_STACK: &str = "    at renderPage (/srv/web/dist/server/render.js:214:17)\n    at async handler (/srv/web/dist/server/routes.js:88:5)\n    at async Layer.handle (/srv/web/node_modules/express/lib/router/layer.js:95:5)";
const GO_STACK: &str = "goroutine 4127 [running]:\nauth/internal/session.(*Store).Get(0xc000218000, {0xc0004a2c60, 0x24})\n\t/src/internal/session/store.go:118 +0x1a5\nauth/internal/http.(*Server).handleLogin(0xc0001b2000, {0x9a3e40, 0xc0003f61c0}, 0xc000452300)\n\t/src/internal/http/login.go:64 +0x2f1";
const JAVA_STACK: &str = "\tat com.shop.checkout.OrderService.placeOrder(OrderService.java:212)\n\tat com.shop.checkout.CheckoutController.checkout(CheckoutController.java:87)\n\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)";
const PY_STACK: &str = "Traceback (most recent call last):\n  File \"/app/payments/api.py\", line 141, in charge\n    result = gateway.charge(intent)\n  File \"/app/payments/gateway.py\", line 77, in charge\n    resp = self.session.post(url, json=body, timeout=self.timeout)";
const RUST_STACK: &str = "   0: catalog::handlers::product::get\n             at ./src/handlers/product.rs:58:22\n   1: catalog::db::pool::with_conn\n             at ./src/db/pool.rs:31:9";

pub const SERVICES: &[Service] = &[
    Service {
        name: "web",
        hosts: &["web-6d9f-1", "web-6d9f-2", "web-6d9f-3"],
        database: "shop",
        check_ms: 4.0,
        errors: &[
            ErrorKind {
                error_type: "TypeError",
                message: "Cannot read properties of undefined (reading 'price') while rendering product {id}",
                stack: NODE_STACK,
                code: "RENDER_FAILED",
            },
            ErrorKind {
                error_type: "FetchError",
                message: "request to http://catalog:8080/products/{id} failed, reason: socket hang up",
                stack: NODE_STACK,
                code: "UPSTREAM_ERROR",
            },
        ],
    },
    Service {
        name: "auth",
        hosts: &["auth-58c4-1", "auth-58c4-2"],
        database: "auth",
        check_ms: 3.0,
        errors: &[ErrorKind {
            error_type: "SessionStoreError",
            message: "redis: connection pool timeout after {n}ms (session {id})",
            stack: GO_STACK,
            code: "SESSION_STORE",
        }],
    },
    Service {
        name: "catalog",
        hosts: &["catalog-7b21-1", "catalog-7b21-2"],
        database: "shop",
        check_ms: 5.0,
        errors: &[ErrorKind {
            error_type: "PoolTimedOut",
            message: "pool timed out while waiting for an open connection (waited {n} ms for product {id})",
            stack: RUST_STACK,
            code: "DB_POOL",
        }],
    },
    Service {
        name: "search",
        hosts: &["search-3f8a-1", "search-3f8a-2"],
        database: "search",
        check_ms: 8.0,
        errors: &[ErrorKind {
            error_type: "SearchBackendError",
            message: "opensearch returned 503 for index products-v{n}: too many requests",
            stack: RUST_STACK,
            code: "SEARCH_BACKEND",
        }],
    },
    Service {
        name: "checkout",
        hosts: &["checkout-9c02-1", "checkout-9c02-2", "checkout-9c02-3"],
        database: "shop",
        check_ms: 6.0,
        errors: &[
            ErrorKind {
                error_type: "InventoryReservationException",
                message: "could not reserve stock for order {id}: item {n} locked by another transaction",
                stack: JAVA_STACK,
                code: "INVENTORY_LOCKED",
            },
            ErrorKind {
                error_type: "PaymentTimeoutException",
                message: "payments did not answer within {n} ms for order {id}",
                stack: JAVA_STACK,
                code: "PAYMENT_TIMEOUT",
            },
        ],
    },
    Service {
        name: "payments",
        hosts: &["payments-44e1-1", "payments-44e1-2"],
        database: "payments",
        check_ms: 5.0,
        errors: &[ErrorKind {
            error_type: "StripeAPIError",
            message: "stripe charge failed for intent pi_{id}: api_error (request req_{n})",
            stack: PY_STACK,
            code: "GATEWAY_ERROR",
        }],
    },
    Service {
        name: "recommendations",
        hosts: &["recs-2a7d-1"],
        database: "shop",
        check_ms: 12.0,
        errors: &[ErrorKind {
            error_type: "ModelLoadError",
            message: "model snapshot {id} unavailable after {n} retries",
            stack: PY_STACK,
            code: "MODEL_UNAVAILABLE",
        }],
    },
    Service {
        name: "notifications",
        hosts: &["notify-1e55-1"],
        database: "shop",
        check_ms: 4.0,
        errors: &[ErrorKind {
            error_type: "TemplateRenderError",
            message: "template order_confirmation v{n} missing variable for order {id}",
            stack: NODE_STACK,
            code: "TEMPLATE",
        }],
    },
];

/// Shown when a service is down: what its callers see.
pub const DOWN_ERROR: ErrorKind = ErrorKind {
    error_type: "UpstreamUnavailable",
    message: "upstream connect error or disconnect/reset before headers: connection refused ({n} attempts, request {id})",
    stack: "",
    code: "UPSTREAM_UNAVAILABLE",
};

/// Shown on the incident route during an error spike.
pub const SPIKE_ERROR: usize = 0; // index into the checkout service's errors

pub const QUERIES: &[QuerySpec] = &[
    // 0..: catalog
    QuerySpec { service: CATALOG, sql: "SELECT p.id, p.name, p.price_cents, p.stock FROM products p WHERE p.id = $1", median_ms: 0.8, sigma: 0.5, rows: (1, 1) },
    QuerySpec { service: CATALOG, sql: "SELECT id, name, price_cents FROM products WHERE category_id = $1 AND active ORDER BY rank LIMIT $2 OFFSET $3", median_ms: 3.5, sigma: 0.6, rows: (20, 50) },
    QuerySpec { service: CATALOG, sql: "SELECT r.rating, r.body, r.created_at FROM reviews r WHERE r.product_id = $1 ORDER BY r.created_at DESC LIMIT $2", median_ms: 2.1, sigma: 0.7, rows: (0, 20) },
    QuerySpec { service: CATALOG, sql: "UPDATE products SET name = $1, price_cents = $2, updated_at = now() WHERE id = $3", median_ms: 1.6, sigma: 0.5, rows: (1, 1) },
    QuerySpec { service: CATALOG, sql: "DELETE FROM products WHERE id = $1", median_ms: 1.9, sigma: 0.5, rows: (1, 1) },
    // 5..: auth
    QuerySpec { service: AUTH, sql: "SELECT id, password_hash, mfa_enabled FROM users WHERE lower(email) = lower($1)", median_ms: 0.9, sigma: 0.4, rows: (0, 1) },
    QuerySpec { service: AUTH, sql: "INSERT INTO sessions (id, user_id, expires_at, ip) VALUES ($1, $2, $3, $4)", median_ms: 1.2, sigma: 0.4, rows: (1, 1) },
    QuerySpec { service: AUTH, sql: "UPDATE users SET display_name = $1, locale = $2 WHERE id = $3", median_ms: 1.1, sigma: 0.4, rows: (1, 1) },
    // 8..: search
    QuerySpec { service: SEARCH, sql: "SELECT id FROM product_search WHERE tsv @@ websearch_to_tsquery($1) ORDER BY ts_rank(tsv, websearch_to_tsquery($1)) DESC LIMIT $2", median_ms: 9.0, sigma: 0.7, rows: (0, 50) },
    // 9..: checkout
    QuerySpec { service: CHECKOUT, sql: "SELECT c.item_id, c.qty, p.price_cents FROM cart_items c JOIN products p ON p.id = c.item_id WHERE c.cart_id = $1", median_ms: 1.8, sigma: 0.5, rows: (1, 12) },
    QuerySpec { service: CHECKOUT, sql: "INSERT INTO orders (user_id, total_cents, status) VALUES ($1, $2, $3) RETURNING id", median_ms: 2.4, sigma: 0.5, rows: (1, 1) },
    QuerySpec { service: CHECKOUT, sql: "UPDATE inventory SET reserved = reserved + $1 WHERE item_id = $2 AND stock - reserved >= $1", median_ms: 2.0, sigma: 0.8, rows: (0, 1) },
    // 12: the slow query of the slow-query burst (a missing index on orders.user_id)
    QuerySpec { service: CHECKOUT, sql: "SELECT o.id, o.total_cents, o.status, o.created_at FROM orders o WHERE o.user_id = $1 ORDER BY o.created_at DESC LIMIT $2", median_ms: 4.0, sigma: 0.6, rows: (0, 20) },
    // 13..: payments
    QuerySpec { service: PAYMENTS, sql: "INSERT INTO payment_intents (order_id, amount_cents, currency, status) VALUES ($1, $2, $3, $4) RETURNING id", median_ms: 1.5, sigma: 0.4, rows: (1, 1) },
    QuerySpec { service: PAYMENTS, sql: "UPDATE payment_intents SET status = $1, provider_ref = $2 WHERE id = $3", median_ms: 1.3, sigma: 0.4, rows: (1, 1) },
    // 15..: recommendations, notifications, web
    QuerySpec { service: RECOMMENDATIONS, sql: "SELECT item_id, score FROM recommendations WHERE user_id = $1 ORDER BY score DESC LIMIT $2", median_ms: 3.0, sigma: 0.6, rows: (0, 24) },
    QuerySpec { service: NOTIFICATIONS, sql: "INSERT INTO outbox (kind, recipient, payload) VALUES ($1, $2, $3)", median_ms: 1.0, sigma: 0.4, rows: (1, 1) },
    QuerySpec { service: WEB, sql: "SELECT value FROM feature_flags WHERE key = ANY($1)", median_ms: 0.5, sigma: 0.4, rows: (1, 8) },
    QuerySpec { service: CHECKOUT, sql: "DELETE FROM cart_items WHERE cart_id = $1 AND item_id = $2", median_ms: 1.2, sigma: 0.4, rows: (0, 1) },
    QuerySpec { service: AUTH, sql: "DELETE FROM api_keys WHERE id = $1 AND user_id = $2", median_ms: 1.0, sigma: 0.4, rows: (0, 1) },
];

/// The query hit by the slow-query burst.
pub const SLOW_QUERY: usize = 12;

const fn route(
    service: usize,
    method: &'static str,
    path: &'static str,
    weight: u32,
    median_ms: f64,
) -> Route {
    Route {
        service,
        method,
        path,
        weight,
        median_ms,
        sigma: 0.55,
        p5xx: 0.002,
        p4xx: 0.01,
        client_errors: &[400, 404],
        bytes: 2_000,
        signed_in: false,
        queries: &[],
        outbound: None,
        audit: Audit::None,
    }
}

pub const ROUTES: &[Route] = &[
    // web (server-side rendering front end)
    Route {
        bytes: 48_000,
        queries: &[17],
        ..route(WEB, "GET", "/", 120, 38.0)
    },
    Route {
        bytes: 52_000,
        queries: &[17],
        p5xx: 0.003,
        ..route(WEB, "GET", "/products/{id}", 140, 45.0)
    },
    Route {
        bytes: 61_000,
        queries: &[17],
        ..route(WEB, "GET", "/category/{slug}", 70, 52.0)
    },
    Route {
        bytes: 30_000,
        signed_in: true,
        ..route(WEB, "GET", "/account", 25, 41.0)
    },
    Route {
        bytes: 35_000,
        signed_in: true,
        ..route(WEB, "GET", "/cart", 45, 33.0)
    },
    Route {
        bytes: 1_200,
        sigma: 0.3,
        p4xx: 0.0,
        ..route(WEB, "GET", "/healthz", 20, 1.2)
    },
    Route {
        bytes: 900,
        sigma: 0.4,
        p4xx: 0.002,
        ..route(WEB, "GET", "/static/{asset}", 160, 2.5)
    },
    // auth
    Route {
        queries: &[5, 6],
        p4xx: 0.06,
        client_errors: &[401, 401, 401, 429],
        audit: Audit::Login,
        ..route(AUTH, "POST", "/api/auth/login", 30, 85.0)
    },
    Route {
        signed_in: true,
        audit: Audit::Logout,
        ..route(AUTH, "POST", "/api/auth/logout", 8, 6.0)
    },
    Route {
        signed_in: true,
        sigma: 0.35,
        ..route(AUTH, "POST", "/api/auth/refresh", 40, 7.5)
    },
    Route {
        signed_in: true,
        queries: &[7],
        p4xx: 0.03,
        client_errors: &[400, 422],
        audit: Audit::Update("user"),
        ..route(AUTH, "PATCH", "/api/users/{id}", 6, 18.0)
    },
    Route {
        signed_in: true,
        ..route(AUTH, "GET", "/api/users/me", 50, 5.0)
    },
    Route {
        signed_in: true,
        queries: &[19],
        p4xx: 0.02,
        client_errors: &[404, 403],
        audit: Audit::Delete("api_key"),
        ..route(AUTH, "DELETE", "/api/api-keys/{id}", 2, 9.0)
    },
    // catalog
    Route {
        queries: &[0, 2],
        ..route(CATALOG, "GET", "/api/products/{id}", 150, 12.0)
    },
    Route {
        queries: &[1],
        ..route(CATALOG, "GET", "/api/products", 90, 22.0)
    },
    Route {
        queries: &[1],
        ..route(CATALOG, "GET", "/api/categories/{id}/products", 45, 25.0)
    },
    Route {
        queries: &[2],
        ..route(CATALOG, "GET", "/api/products/{id}/reviews", 30, 14.0)
    },
    Route {
        signed_in: true,
        queries: &[3],
        p4xx: 0.04,
        client_errors: &[400, 403, 409, 422],
        audit: Audit::Update("product"),
        ..route(CATALOG, "PUT", "/api/products/{id}", 4, 28.0)
    },
    Route {
        signed_in: true,
        queries: &[4],
        p4xx: 0.03,
        client_errors: &[403, 404],
        audit: Audit::Delete("product"),
        ..route(CATALOG, "DELETE", "/api/products/{id}", 1, 21.0)
    },
    Route {
        signed_in: true,
        bytes: 12_000,
        queries: &[3],
        outbound: Some(Outbound {
            integration: "s3",
            method: "PUT",
            route: "/shop-media/products/{key}",
            median_ms: 60.0,
            sigma: 0.5,
            fail: 0.002,
        }),
        audit: Audit::Create("product_image"),
        ..route(CATALOG, "POST", "/api/products/{id}/images", 2, 140.0)
    },
    // search
    Route {
        bytes: 9_000,
        queries: &[8],
        sigma: 0.7,
        ..route(SEARCH, "GET", "/api/search", 110, 45.0)
    },
    Route {
        bytes: 1_500,
        sigma: 0.5,
        ..route(SEARCH, "GET", "/api/search/suggest", 160, 9.0)
    },
    // checkout
    Route {
        signed_in: true,
        queries: &[9, 10, 11],
        p5xx: 0.004,
        p4xx: 0.03,
        client_errors: &[400, 409, 422],
        outbound: Some(Outbound {
            integration: "stripe",
            method: "POST",
            route: "/v1/payment_intents",
            median_ms: 320.0,
            sigma: 0.45,
            fail: 0.004,
        }),
        audit: Audit::Create("order"),
        ..route(CHECKOUT, "POST", "/api/checkout", 12, 420.0)
    },
    Route {
        signed_in: true,
        queries: &[9],
        ..route(CHECKOUT, "GET", "/api/cart", 60, 11.0)
    },
    Route {
        signed_in: true,
        queries: &[9, 11],
        p4xx: 0.02,
        client_errors: &[400, 409],
        audit: Audit::Update("cart"),
        ..route(CHECKOUT, "POST", "/api/cart/items", 35, 19.0)
    },
    Route {
        signed_in: true,
        queries: &[18],
        audit: Audit::Delete("cart_item"),
        ..route(CHECKOUT, "DELETE", "/api/cart/items/{id}", 8, 10.0)
    },
    Route {
        signed_in: true,
        queries: &[12],
        ..route(CHECKOUT, "GET", "/api/orders", 25, 16.0)
    },
    Route {
        signed_in: true,
        queries: &[12],
        ..route(CHECKOUT, "GET", "/api/orders/{id}", 20, 9.0)
    },
    Route {
        signed_in: true,
        queries: &[10],
        p4xx: 0.05,
        client_errors: &[403, 409],
        audit: Audit::Update("order"),
        ..route(CHECKOUT, "POST", "/api/orders/{id}/cancel", 2, 35.0)
    },
    // payments
    Route {
        signed_in: true,
        queries: &[13, 14],
        p5xx: 0.004,
        p4xx: 0.04,
        client_errors: &[402, 402, 400],
        outbound: Some(Outbound {
            integration: "stripe",
            method: "POST",
            route: "/v1/charges",
            median_ms: 380.0,
            sigma: 0.5,
            fail: 0.004,
        }),
        audit: Audit::Create("payment"),
        ..route(PAYMENTS, "POST", "/api/payments", 10, 450.0)
    },
    Route {
        signed_in: true,
        queries: &[14],
        outbound: Some(Outbound {
            integration: "stripe",
            method: "POST",
            route: "/v1/refunds",
            median_ms: 290.0,
            sigma: 0.5,
            fail: 0.004,
        }),
        audit: Audit::Create("refund"),
        ..route(PAYMENTS, "POST", "/api/refunds", 1, 360.0)
    },
    Route {
        sigma: 0.3,
        p4xx: 0.01,
        client_errors: &[400, 401],
        queries: &[14],
        ..route(PAYMENTS, "POST", "/webhooks/stripe", 8, 14.0)
    },
    // recommendations
    Route {
        bytes: 6_000,
        queries: &[15],
        ..route(RECOMMENDATIONS, "GET", "/api/recommendations", 70, 35.0)
    },
    Route {
        bytes: 4_000,
        queries: &[15],
        ..route(
            RECOMMENDATIONS,
            "GET",
            "/api/recommendations/similar/{id}",
            40,
            28.0,
        )
    },
    // notifications
    Route {
        signed_in: true,
        queries: &[16],
        outbound: Some(Outbound {
            integration: "sendgrid",
            method: "POST",
            route: "/v3/mail/send",
            median_ms: 140.0,
            sigma: 0.45,
            fail: 0.003,
        }),
        ..route(NOTIFICATIONS, "POST", "/api/notifications/email", 12, 180.0)
    },
    Route {
        signed_in: true,
        queries: &[16],
        outbound: Some(Outbound {
            integration: "twilio",
            method: "POST",
            route: "/2010-04-01/Accounts/{sid}/Messages.json",
            median_ms: 210.0,
            sigma: 0.5,
            fail: 0.004,
        }),
        ..route(NOTIFICATIONS, "POST", "/api/notifications/sms", 3, 250.0)
    },
    Route {
        signed_in: true,
        ..route(NOTIFICATIONS, "GET", "/api/notifications", 25, 8.0)
    },
];

/// Finds a route by method and path (used by the incident schedule and the tests).
pub fn route_index(method: &str, path: &str) -> Option<usize> {
    ROUTES
        .iter()
        .position(|r| r.method == method && r.path == path)
}

pub fn service_index(name: &str) -> Option<usize> {
    SERVICES.iter().position(|s| s.name == name)
}

pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "ShopApp/5.12.1 (iOS 18.1; iPhone15,2)",
    "ShopApp/5.12.0 (Android 14; SM-S918B)",
    "okhttp/4.12.0",
];

/// Registered users: `u10000`..; a few low ids are staff.
pub const USERS: u32 = 5_000;
const FIRST_USER: u32 = 10_000;

pub fn user_id(i: u32) -> String {
    format!("u{}", FIRST_USER + i)
}

pub fn user_role(i: u32) -> &'static str {
    match i {
        0..=4 => "admin",
        5..=19 => "support",
        _ => "customer",
    }
}

/// A stable mix of the user's number, so each user keeps one IP and one browser.
fn mix(i: u32) -> u64 {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

pub fn user_ip(i: u32) -> String {
    const FIRST: [u8; 12] = [24, 31, 45, 62, 73, 81, 92, 104, 151, 176, 188, 212];
    let h = mix(i);
    format!(
        "{}.{}.{}.{}",
        FIRST[(h % 12) as usize],
        (h >> 8) & 0xff,
        (h >> 16) & 0xff,
        ((h >> 24) % 253) + 1
    )
}

pub fn user_agent(i: u32) -> &'static str {
    USER_AGENTS[(mix(i) >> 40) as usize % USER_AGENTS.len()]
}

/// The staff account behind the mass-delete incident, and the brute-force source.
pub const MASS_DELETE_USER: u32 = 7;
pub const MASS_DELETE_IP: &str = "81.2.69.160";
pub const BRUTE_FORCE_IP: &str = "185.220.101.47";
pub const BRUTE_FORCE_UA: &str = "python-requests/2.32.3";
pub const BRUTE_FORCE_NAMES: &[&str] = &[
    "admin",
    "root",
    "administrator",
    "test",
    "support",
    "info",
    "sales",
    "u10001",
    "u10002",
    "u10003",
    "billing",
    "dev",
    "guest",
    "operator",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_consistent() {
        assert!(SERVICES.len() >= 5);
        assert!(ROUTES.len() >= 30);
        for r in ROUTES {
            assert!(r.service < SERVICES.len());
            assert!(r.median_ms > 0.0 && r.sigma > 0.0);
            for &q in r.queries {
                assert!(q < QUERIES.len(), "{} {}", r.method, r.path);
            }
        }
        for q in QUERIES {
            assert!(q.service < SERVICES.len());
            assert!(q.rows.0 <= q.rows.1);
        }
        for s in SERVICES {
            assert!(!s.errors.is_empty());
        }
        // Every service serves traffic.
        for (i, s) in SERVICES.iter().enumerate() {
            assert!(ROUTES.iter().any(|r| r.service == i), "{}", s.name);
        }
    }

    #[test]
    fn users_keep_their_ip_and_agent() {
        assert_eq!(user_ip(42), user_ip(42));
        assert_eq!(user_agent(42), user_agent(42));
        assert_eq!(user_id(0), "u10000");
        let distinct: std::collections::HashSet<_> = (0..200).map(user_ip).collect();
        assert!(distinct.len() > 150);
    }
}
