//! The Redis test container itself: it answers, an outage is an outage, and after a restart it
//! answers again on the same URL (what the Redis adapter's outage tests rely on).

use gateway_tests::redis::TestRedis;

#[tokio::test]
async fn redis_container_answers_goes_down_and_comes_back_on_the_same_url() {
    let redis = TestRedis::start().await;
    let url = redis.url.clone();
    assert!(redis.ping().await, "a started Redis answers PING at {url}");

    redis.stop().await;
    assert!(
        !redis.ping().await,
        "a stopped Redis does not answer at {url}"
    );

    redis.start_again().await;
    assert_eq!(redis.url, url, "the URL survives a restart");
    assert!(
        redis.url.ends_with(&format!(":{}", redis.port())),
        "{url} names the published port"
    );
    assert!(redis.ping().await, "the restarted Redis answers at {url}");
}
