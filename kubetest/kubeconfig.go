package kubetest

import clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

// clientcmdConfig is a kubeconfig with one cluster, user and context, all
// named name: token auth against server, trusting ca (PEM).
func clientcmdConfig(server, name, token string, ca []byte) clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return *cfg
}
