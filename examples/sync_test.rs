//! Embedding latchkey in a test without an async runtime: `start_blocking` runs the
//! server on a runtime of its own; the handle shuts it down when dropped.
//!
//! `cargo test --example sync_test`, or `cargo run --example sync_test`.

fn count_visit(con: &mut redis::Connection) -> redis::RedisResult<i64> {
    redis::cmd("INCR").arg("visits").query(con)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = latchkey::Server::builder().start_blocking()?;
    let mut con = redis::Client::open(server.url())?.get_connection()?;
    for _ in 0..3 {
        count_visit(&mut con)?;
    }
    println!("visits = {:?}", server.get("visits"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_counted() {
        let server = latchkey::Server::builder().start_blocking().unwrap();
        let mut con = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        count_visit(&mut con).unwrap();
        count_visit(&mut con).unwrap();
        assert_eq!(server.get("visits").as_deref(), Some(&b"2"[..]));
    }
}
