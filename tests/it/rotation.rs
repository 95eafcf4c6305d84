//! Rotating the signing key without logging anyone out, on the memory
//! store. The same procedure runs against Redis and Redis Cluster in
//! the `redis` module.

#[tokio::test]
async fn three_step_key_rotation_on_the_memory_store() {
    crate::harness::site::three_step_rotation("").await;
}
