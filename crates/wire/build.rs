//! Generates the pbflow messages and the Collector service from
//! proto/flow.proto, and the AgentConfig service from
//! proto/agent_config.proto, with the protoc that protoc-bin-vendored ships, so a
//! build needs no protoc installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Records is written by hand (src/records.rs): received, it is decoded
    // in place into flow records.
    config.extern_path(".pbflow.Records", "crate::records::Records");
    let include = protoc_bin_vendored::include_path()?;
    // Requests are counted on the wire before they are decoded (codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::codec::BoundedCodec")
        .compile_with_config(
            config,
            &["proto/flow.proto".into()],
            &["proto".into(), include.clone()],
        )?;
    // The agents' configuration: small messages, tonic's own codec.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/agent_config.proto".into()],
        &["proto".into(), include],
    )?;
    Ok(())
}
